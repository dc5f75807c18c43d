/** @odoo-module */
// A project's Plane tab: create its Plane project (or link an existing one), then watch the
// back-fill's progress.

import {
    addPlaneTour,
    fieldShows,
    openPage,
    quoted,
} from "@ipai_plane_connector/../tests/tours/plane_tour";

function press(name, where = ".o_form_view") {
    return { content: `press ${name}`, trigger: `${where} button[name=${quoted(name)}]`, run: "click" };
}

function linkedAndRunning(v) {
    return [
        fieldShows("plane_backfill_state", "Running"),
        fieldShows("plane_task_total", String(v.tasks)),
        {
            content: "Open in Plane points at the Plane web app",
            trigger: `.o_field_widget[name='plane_project_url'] a[href^=${quoted(v.project_url_prefix)}]`,
        },
    ];
}

addPlaneTour("plane_project_create_tour", (v) => [
    openPage("plane"),
    press("action_plane_create_project"),
    fieldShows("plane_project_identifier", v.identifier),
    fieldShows("plane_task_linked", "0"),
    ...linkedAndRunning(v),
]);

addPlaneTour("plane_project_link_tour", (v) => [
    openPage("plane"),
    press("action_plane_pick_project"),
    {
        content: "the dialog lists the workspace's Plane projects",
        trigger: `.modal .o_field_widget[name='line_ids'] .o_data_row:contains(${quoted(v.plane_name)})`,
    },
    {
        content: "search the Plane project to link",
        trigger: ".modal .o_field_widget[name='choice_id'] input",
        run: `edit ${v.identifier}`,
    },
    {
        content: "pick it",
        trigger: `.o-autocomplete--dropdown-item:contains(${quoted(v.plane_name)})`,
        run: "click",
    },
    press("action_link", ".modal"),
    fieldShows("plane_project_identifier", v.identifier),
    ...linkedAndRunning(v),
]);

addPlaneTour("plane_project_progress_tour", (v) => [
    openPage("plane"),
    fieldShows("plane_backfill_state", "Done"),
    fieldShows("plane_task_linked", String(v.tasks)),
    fieldShows("plane_task_total", String(v.tasks)),
    fieldShows("plane_progress", "100"),
    fieldShows("plane_job_pending", "0"),
]);
