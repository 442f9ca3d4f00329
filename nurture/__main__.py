from nurture.cli import main

raise SystemExit(main())
