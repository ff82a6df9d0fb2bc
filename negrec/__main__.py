from negrec.cli import main

raise SystemExit(main())
