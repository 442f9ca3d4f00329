from nurture.cli.main import main

raise SystemExit(main())
