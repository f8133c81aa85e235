"""Adapters: one module (or package) per provider, each implementing the ports.

Nothing imports an adapter except the composition root (`queue_runtime.create_client`) and
users who construct one directly; provider SDKs are imported only inside their adapter.
"""
