#!/usr/bin/env bash
# Regenerates the README's screenshots of the console at 390 px (docs/screenshots/:
# review-changes-390.png and review-file-390.png from the review browser test,
# notify-settings-390.png from the notifications one, devices-add-390.png from the devices one,
# attachments-390.png from the attachments one) by running those tests against the built
# server. Needs `make build` first (and node + chromium from `make deps`).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
export PA_SERVER_BINARY=${PA_SERVER_BINARY:-$PWD/$BUILD_DIR/app/pocket-agent-server}
export PA_FAKE_CLAUDE=${PA_FAKE_CLAUDE:-$PWD/$BUILD_DIR/tests/fixtures/fake-claude}
export PA_CHROMIUM=${PA_CHROMIUM:-$(command -v chromium)}
export PA_DOCS_SCREENSHOTS=$PWD/docs/screenshots
export PA_ARTIFACTS_DIR=${PA_ARTIFACTS_DIR:-$PWD/$BUILD_DIR/test-artifacts}
cd tests/browser
node --test review.test.mjs notify.test.mjs devices.test.mjs attachments.test.mjs
ls -l "$PA_DOCS_SCREENSHOTS"
