from edgeopt.cli import main

main()
