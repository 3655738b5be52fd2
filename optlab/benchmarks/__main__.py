import sys

from optlab.benchmarks.runner import main

sys.exit(main())
