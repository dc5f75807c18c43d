/** @odoo-module */
// Shared by the Plane addons' browser tours (tests/test_tours.py starts them).
//
// A tour is registered once and must work on Odoo 18 and 19: only `trigger` selectors and
// string `run` commands that both series understand are used. Every button and field a tour
// touches is named in a trigger, so a tour fails when one of them is missing from the view.

import { registry } from "@web/core/registry";

// Values a test hands its tour (the emulator's URL, record ids, expected links): a cookie set
// by HttpCase.start_tour(cookies=...), so they survive the page reloads a tour goes through.
const COOKIE = "plane_tour";

export function tourValues() {
    const pair = document.cookie.split("; ").find((c) => c.startsWith(`${COOKIE}=`));
    return pair ? JSON.parse(decodeURIComponent(pair.slice(COOKIE.length + 1))) : {};
}

/**
 * Register a tour whose steps are built from the test's values.
 * `values.step_timeout` (ms) shortens how long a step waits for its trigger (Odoo: 10 s),
 * which the test proving that a missing button fails the tour uses to fail fast.
 */
export function addPlaneTour(name, buildSteps) {
    registry.category("web_tour.tours").add(name, {
        steps: () => {
            const values = tourValues();
            const steps = buildSteps(values);
            return values.step_timeout
                ? steps.map((step) => ({ timeout: values.step_timeout, ...step }))
                : steps;
        },
    });
}

/** CSS string literal for a selector attribute value. */
export function quoted(text) {
    return JSON.stringify(String(text));
}

/** Click a notebook page by its name (`<page name="...">`). */
export function openPage(name) {
    return {
        content: `open the ${name} page`,
        trigger: `.o_notebook_headers a.nav-link[name=${quoted(name)}]`,
        run: "click",
    };
}

/** A field widget (`<field name="...">`) whose text contains `text`. */
export function fieldShows(name, text) {
    return {
        content: `${name} shows ${text}`,
        trigger: `.o_field_widget[name=${quoted(name)}]:contains(${quoted(text)})`,
    };
}
