import sys

from squeezelab.cli import main

sys.exit(main())
