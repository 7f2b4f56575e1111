"""The v3+ style `cors` option: the same policy, configured in one object.

Run:  python examples/cors/modern_cors_option.py
"""

import sockjet

io = sockjet.Server(
    cors=sockjet.CORS(
        origin=["https://example.com", "http://localhost:8080"],
        credentials=True,
        allowed_headers=["my-custom-header"],
        exposed_headers=["x-request-id"],
        max_age=600,
    )
)

if __name__ == "__main__":
    sockjet.run(io, port=3000)
