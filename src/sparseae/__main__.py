from sparseae.cli import main

raise SystemExit(main())
