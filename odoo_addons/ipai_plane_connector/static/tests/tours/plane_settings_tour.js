/** @odoo-module */
// Settings › Plane: fill the server and the secret references, save, test the connection
// against the emulator (success), then with a key Plane refuses (Plane's message shown).

import { addPlaneTour, fieldShows, quoted } from "./plane_tour";

const APP = ".app_settings_block[data-key='ipai_plane_connector']";

function fill(name, value) {
    return {
        content: `fill ${name}`,
        trigger: `${APP} .o_field_widget[name=${quoted(name)}] input`,
        run: `edit ${value}`,
    };
}

function testConnection() {
    return {
        content: "press Test connection",
        trigger: `${APP} button[name='action_plane_test_connection']`,
        run: "click",
    };
}

function notification(kind, text) {
    return {
        content: `a ${kind} notification: ${text}`,
        trigger: `.o_notification:has(.o_notification_bar.bg-${kind}) .o_notification_content:contains(${quoted(text)})`,
    };
}

addPlaneTour("plane_settings_tour", (v) => [
    fill("plane_base_url", v.base_url),
    fill("plane_web_url", v.web_url),
    fill("plane_workspace_slug", v.workspace),
    fill("plane_api_key_ref", v.good_key_ref),
    fill("plane_webhook_secret_ref", v.webhook_secret_ref),
    {
        content: "save the settings (the page reloads)",
        trigger: ".o_form_button_save",
        run: "click",
        expectUnloadPage: true,
    },
    {
        content: "the base URL was saved",
        trigger: `${APP} .o_field_widget[name='plane_base_url'] input:value(${quoted(v.base_url)})`,
    },
    testConnection(),
    notification("success", "connected as"),
    fieldShows("plane_last_check", "(ok)"),
    {
        content: "dismiss the notification",
        trigger: ".o_notification .o_notification_close",
        run: "click",
    },
    fill("plane_api_key_ref", v.bad_key_ref),
    {
        content: "save the refused key's reference",
        trigger: ".o_form_button_save",
        run: "click",
        expectUnloadPage: true,
    },
    {
        content: "the new reference was saved",
        trigger: `${APP} .o_field_widget[name='plane_api_key_ref'] input:value(${quoted(v.bad_key_ref)})`,
    },
    testConnection(),
    notification("danger", v.plane_message),
    fieldShows("plane_last_check", "(failed)"),
]);
