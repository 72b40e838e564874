"""The HTTP edge: FastAPI routers, wire shapes, the one error -> status table. Routes are thin
calls into `interca.service` and `interca.auth`."""
