"""Change the allowed origins at run time with io.origins(...), as on the page:

    io.origins(["http://localhost:3000"])   # for local development
    io.origins(["https://example.com"])

The new list applies to the next request; sessions already open are checked on their next
request too. io.origins() returns the current value.

Run:  SOCKJET_DEV=1 python examples/cors/runtime_origins.py
"""

import os

import sockjet

io = sockjet.Server(origins=["https://example.com"])

if os.environ.get("SOCKJET_DEV"):
    io.origins(["http://localhost:3000"])  # for local development

print("allowed origins:", io.origins())

if __name__ == "__main__":
    sockjet.run(io, port=3001)
