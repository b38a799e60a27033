"""HTTP and WebSocket routers, one per audience. Routes stay thin; logic lives in ``bot/``."""
