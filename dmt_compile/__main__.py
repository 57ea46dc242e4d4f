import sys

from dmt_compile.cli import main

sys.exit(main())
