from zoptal_cli.app import main

main()
