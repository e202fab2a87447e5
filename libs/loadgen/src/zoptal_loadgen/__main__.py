from zoptal_loadgen.app import main

main()
