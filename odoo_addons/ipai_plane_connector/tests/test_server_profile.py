"""The connector against an old and a new Plane: the server profile shown in Settings › Plane
and the health checks, paths built for the server's route family, and a server changed in place
noticed on the first missing route and by the health check."""

from odoo.tests import tagged
from plane_connector import NotFoundError
from plane_connector.server import MissingRouteError

from .common import PlaneEmulatorCase


class ServerProfileTests:
    """Run on each profile by the classes below (a mixin: not collected by itself)."""

    def test_health_check_and_settings_show_the_server(self):
        check = self.env["plane.health.check"]._plane_run_check()
        self.assertTrue(check.ok, check.message)
        family = self.work_items_route.strip("/")
        label = f"Plane CE {self.emulator.version} — work items via /{family}/"
        self.assertEqual(check.plane_server, label)
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.plane_server, label)

    def test_paths_follow_the_route_family(self):
        pid = self.emulator.project_id
        item = self.emulator.seed_work_items(1)[0]
        path = self.connector._plane_path("work_items", pid, item)
        self.assertIn(self.work_items_route, path)
        self.assertEqual(self.connector._plane_request("GET", path)["id"], item)
        comments = self.connector._plane_path("comments", pid, item)
        self.assertEqual(list(self.connector._plane_paginate(comments)), [])


@tagged("post_install", "-at_install")
class TestServerProfileNewest(ServerProfileTests, PlaneEmulatorCase):
    allow_inherited_tests_method = True  # Odoo's loader runs only a class's own tests otherwise


@tagged("post_install", "-at_install")
class TestServerProfilePlane100(ServerProfileTests, PlaneEmulatorCase):
    emulator_version = "1.0.0"
    allow_inherited_tests_method = True

    def test_a_server_changed_in_place_is_noticed(self):
        pid, item = self.emulator.project_id, self.emulator.seed_work_items(1)[0]
        self.assertEqual(self.connector._plane_server().family, "issues")
        # Upgraded in place: noticed by the next health check (the cron), before any 404.
        self.emulator.version = "1.3.1"
        self.addCleanup(setattr, self.emulator, "version", "1.0.0")
        check = self.env["plane.health.check"]._plane_run_check()
        self.assertEqual(check.plane_server, "Plane CE 1.3.1 — work items via /work-items/")
        self.assertIn("/work-items/", self.connector._plane_path("work_items", pid, item))
        # Back to 1.0.0 (a restore): the first call on the now missing route fails once, not as
        # a NotFoundError (which callers read as "deleted in Plane"), and drops the profile;
        # the next path is built for what the server is now.
        self.emulator.version = "1.0.0"
        stale = self.connector._plane_path("work_items", pid, item)
        with self.assertRaises(MissingRouteError) as caught:
            self.connector._plane_request("GET", stale)
        self.assertNotIsInstance(caught.exception, NotFoundError)
        with self.assertRaises(MissingRouteError):
            list(self.connector._plane_paginate(stale.rsplit("/", 2)[0] + "/"))
        fresh = self.connector._plane_path("work_items", pid, item)
        self.assertIn("/issues/", fresh)
        self.assertEqual(self.connector._plane_request("GET", fresh)["id"], item)
