import sys

from safetygraph.cli import main

sys.exit(main())
