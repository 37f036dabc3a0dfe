import sys

from bpgpu.cli.main import main

sys.exit(main())
