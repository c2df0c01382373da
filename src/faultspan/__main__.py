import sys

from faultspan.cli import main

sys.exit(main())
