from genline.cli import main

main()
