/** @odoo-module */
// The webhook deliveries list: a dead delivery is opened and retried.

import { addPlaneTour, fieldShows, quoted } from "./plane_tour";

addPlaneTour("plane_deliveries_tour", (v) => [
    {
        content: "the dead delivery is in the list, marked as failed",
        trigger: `.o_list_view .o_data_row.text-danger td[name='delivery_id']:contains(${quoted(v.delivery_id)})`,
        run: "click",
    },
    {
        content: "its form says Dead",
        trigger: ".o_statusbar_status .o_arrow_button_current:contains('Dead')",
    },
    {
        content: "retry it",
        trigger: ".o_form_statusbar button[name='action_retry']",
        run: "click",
    },
    // What the retry wrote, read from the form's fields first: on Odoo 18 the statusbar has
    // been seen to keep the old state's highlight after the form reloaded (the Retry button
    // and the attempts had changed), so the state is then checked in the list.
    fieldShows("attempts", "0"),
    {
        content: "nothing left to retry",
        trigger: ".o_form_statusbar:not(:has(button[name='action_retry']))",
    },
    {
        content: "back to the list",
        trigger: ".o_breadcrumb li.o_back_button a",
        run: "click",
    },
    {
        content: "back in the queue: Received, no longer marked as failed",
        trigger: `.o_list_view .o_data_row:not(.text-danger):has(td[name='delivery_id']:contains(${quoted(v.delivery_id)})) td[name='state']:contains('Received')`,
    },
]);
