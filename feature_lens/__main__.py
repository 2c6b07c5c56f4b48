"""`python -m feature_lens` runs the command line."""

from feature_lens.cli import main

raise SystemExit(main())
