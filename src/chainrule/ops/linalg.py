"""(being written)"""
__all__: list[str] = []
import types

linalg = types.SimpleNamespace()
