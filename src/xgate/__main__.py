from xgate.cli import main

main()
