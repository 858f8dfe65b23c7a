from listend.cli import main

raise SystemExit(main())
