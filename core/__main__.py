import sys

from encoder_recipes.cli import main

sys.exit(main())
