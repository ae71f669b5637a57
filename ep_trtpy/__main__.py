import sys

from ep_trtpy.cli import main

sys.exit(main())
