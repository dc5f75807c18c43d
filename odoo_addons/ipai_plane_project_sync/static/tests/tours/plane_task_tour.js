/** @odoo-module */
// A task's Plane tab: its sync status and 'Open in Plane' link; then a failing task pushed
// again with 'Push to Plane'.

import {
    addPlaneTour,
    fieldShows,
    openPage,
    quoted,
} from "@ipai_plane_connector/../tests/tours/plane_tour";

addPlaneTour("plane_task_tour", (v) => [
    openPage("plane"),
    fieldShows("plane_sync_state", "Synced"),
    {
        content: "Open in Plane points at the work item in the Plane web app",
        trigger: `.o_field_widget[name='plane_url'] a[href=${quoted(v.item_url)}]`,
    },
    {
        content: "a synced task offers no push",
        trigger: ".o_notebook:not(:has(button[name='action_plane_push']))",
    },
    {
        content: "open the failing task",
        trigger: ".o_form_view",
        run: `goToUrl ${v.failing_task_url}`,
        expectUnloadPage: true,
    },
    openPage("plane"),
    fieldShows("plane_sync_state", "Failing"),
    fieldShows("plane_sync_error", v.error),
    {
        content: "push it again",
        trigger: ".o_form_view button[name='action_plane_push']",
        run: "click",
    },
    fieldShows("plane_sync_state", "Queued"),
]);
