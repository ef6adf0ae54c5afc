import requests

print("a library, not a server")
