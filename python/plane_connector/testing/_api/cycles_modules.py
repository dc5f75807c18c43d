"""Views: cycles and modules, and the work items they hold."""

from __future__ import annotations

from typing import Any

from plane_connector.testing._api.base import _Ctx
from plane_connector.testing._api.kit import ViewKit


class CycleModuleViews(ViewKit):
    def _v_cycles(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._collection(ctx, "cycle", self.store.cycles, self.store.create_cycle)

    def _v_cycle(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._simple_detail(ctx, "cycle")

    def _v_modules(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._collection(ctx, "module", self.store.modules, self.store.create_module)

    def _v_module(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._simple_detail(ctx, "module")

    def _v_cycle_items(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership(ctx, self.store.cycles, self.store.cycle_items)

    def _v_module_items(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership(ctx, self.store.modules, self.store.module_items)

    def _v_cycle_item(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership_item(ctx, self.store.cycles, self.store.cycle_items)

    def _v_module_item(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership_item(ctx, self.store.modules, self.store.module_items)
