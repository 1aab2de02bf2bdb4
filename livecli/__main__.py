from livecli.cli import main

raise SystemExit(main())
