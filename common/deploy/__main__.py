"""``python -m common.deploy --bundle <bundle folder or zip> -i <input folder> -o <output folder>``."""

from common.deploy.app import main

main()
