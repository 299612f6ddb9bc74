from dferbench.cli import main

main()
