"""``python -m cellang ...`` = ``cellang ...``."""

from cellang.cli.main import main

raise SystemExit(main())
