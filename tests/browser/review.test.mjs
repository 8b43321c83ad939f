// The review tabs of the web console at 390 px (a phone), in Chromium against the built server
// with the fake CLI: Changes (changed files with counts, a colored diff readable without
// scrolling the page), Files (listing, highlighted file view, binary files), Sessions (past
// sessions, "Resume this one" resumes the older conversation).
// With PA_DOCS_SCREENSHOTS=<dir> (scripts/console-screenshots.sh) it also saves the README's
// screenshots of the Changes tab and the file view there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject, runPrompt } from './browser.mjs';

const docsShots = process.env.PA_DOCS_SCREENSHOTS;
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true };

const shared = sharedBrowserAndServer({ dirPrefix: 'pa-browser-review-' });
const { projectDir } = shared;

function git(dir, ...args) {
  execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
    { cwd: dir, stdio: 'ignore', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' } });
}

// A git project with a modified file (long lines), a new file and a binary one.
function gitProject() {
  const dir = projectDir();
  git(dir, 'init', '-q');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'server.ts'), [
    "import { createServer } from 'node:http';",
    '',
    'const port = 8080;',
    "createServer((req, res) => res.end('hello')).listen(port);",
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'README.md'), '# Demo\n\nA small demo project.\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'initial');
  writeFileSync(join(dir, 'src', 'server.ts'), [
    "import { createServer } from 'node:http';",
    '',
    '// The port comes from the environment so that several copies can run side by side on one machine.',
    'const port = Number(process.env.PORT ?? 8080);',
    "createServer((req, res) => res.end(`hello from ${req.url} on a line long enough to need scrolling on a phone`)).listen(port);",
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'src', 'util.py'), 'def greet(name):\n    return f"hello {name}"\n');
  writeFileSync(join(dir, 'logo.bin'), Buffer.from([0, 1, 2, 3]));
  return dir;
}

async function noPageOverflow(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal page scrolling at 390 px (overflow ${overflow}px)`);
}

test('Changes tab: changed files with counts and a colored diff at 390 px', async (t) => {
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  const dir = gitProject();
  await createProject(page, dir);

  await page.getByRole('tab', { name: 'Changes' }).click();
  const files = page.locator('[data-testid=changed-files] li');
  await files.first().waitFor();
  assert.match(await page.locator('[data-testid=changes-source]').textContent(), /git/);
  assert.deepEqual((await files.evaluateAll((els) => els.map((e) => e.dataset.path))).sort(),
    ['logo.bin', 'src/server.ts', 'src/util.py']);
  const server_ts = page.locator('[data-testid=changed-files] li[data-path="src/server.ts"]');
  assert.equal(await server_ts.locator('.badge').textContent(), 'modified');
  assert.equal(await server_ts.locator('.counts').textContent(), '+3 −2');
  assert.equal(await page.locator('li[data-path="logo.bin"]').locator('text=binary').count(), 1);
  // The conversation is out of the way meanwhile.
  assert.equal(await page.locator('#prompt').isVisible(), false);

  await server_ts.locator('button.link').click();
  const diff = page.locator('[data-testid=diff]');
  await diff.waitFor();
  assert.equal(await diff.locator('.diff-file').count(), 1);
  assert.ok(await diff.locator('.dl.add').count() >= 3);
  assert.equal(await diff.locator('.dl.del').count(), 2);
  await diff.locator('.dl.del', { hasText: '-const port = 8080;' }).waitFor();
  // Removed lines red, added lines green: the colors differ and are not the text's default.
  const [addColor, delColor] = await Promise.all(['.dl.add', '.dl.del'].map((s) =>
    diff.locator(s).first().evaluate((el) => getComputedStyle(el).backgroundColor)));
  assert.notEqual(addColor, delColor);
  // A long line scrolls inside its hunk, not the page.
  const hunk = diff.locator('.hunk').first();
  assert.ok(await hunk.evaluate((el) => el.scrollWidth > el.clientWidth), 'the hunk scrolls sideways');
  await noPageOverflow(page);
  if (docsShots) {
    mkdirSync(docsShots, { recursive: true });
    await page.locator('.diff-area').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(docsShots, 'review-changes-390.png') });
  }
  await screenshot(page, 'review-changes-phone');

  // Wrapped: no sideways scrolling in the hunk either.
  await page.locator('#diff-wrap').check();
  const wrapped = page.locator('[data-testid=diff].wrap .hunk').first();
  await wrapped.waitFor();
  assert.ok(await wrapped.evaluate((el) => el.scrollWidth <= el.clientWidth + 1), 'wrapped lines fit');

  // The whole diff shows the new file too.
  await page.getByRole('button', { name: 'Whole diff' }).click();
  await page.locator('[data-testid=diff] .diff-file[data-path="src/util.py"]').waitFor();
  assert.deepEqual(errors, []);
});

test('Files tab: listing, highlighted file view and binary files at 390 px', async (t) => {
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  const dir = gitProject();
  await createProject(page, dir);

  // From the Changes tab, "View" opens the file.
  await page.getByRole('tab', { name: 'Changes' }).click();
  await page.locator('li[data-path="src/server.ts"]').getByRole('button', { name: 'View' }).click();
  const code = page.locator('[data-testid=file-content] code.hljs');
  await code.waitFor();
  assert.equal(await code.getAttribute('data-language'), 'typescript');
  assert.match(await code.textContent(), /const port = Number\(process\.env\.PORT \?\? 8080\);/);
  assert.ok(await code.locator('span.hljs-keyword').count() >= 2, 'keywords are highlighted');
  assert.ok(await code.locator('span.hljs-string').count() >= 1, 'strings are highlighted');
  await noPageOverflow(page);
  if (docsShots) await page.screenshot({ path: join(docsShots, 'review-file-390.png') });
  await screenshot(page, 'review-file-phone');

  // The listing: directories first; into src and back via the path.
  await page.getByRole('tab', { name: 'Files' }).click();
  const list = page.locator('[data-testid=file-list]');
  await list.locator('li[data-kind=dir]', { hasText: 'src/' }).waitFor();
  const names = await list.locator('li button.link').allTextContents();
  assert.ok(names.indexOf('src/') < names.indexOf('README.md'), names.join(','));
  await list.getByRole('button', { name: 'src/' }).click();
  await page.locator('[data-testid=file-list] li', { hasText: 'util.py' }).waitFor();
  await page.getByRole('button', { name: 'util.py' }).click();
  await page.locator('[data-testid=file-content] code[data-language=python] span.hljs-keyword', { hasText: 'def' }).waitFor();

  await page.locator('nav.crumbs').getByRole('button', { name: 'project' }).click();
  await page.getByRole('button', { name: 'logo.bin' }).click();
  await page.locator('[data-testid=binary]').waitFor();
  assert.deepEqual(errors, []);
});

test('Sessions tab: past sessions and "Resume this one"', async (t) => {
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  await runPrompt(page, 'first conversation [[fake:text text=one]]');
  await page.getByRole('button', { name: 'New session' }).click();
  await page.locator('.project-bar', { hasText: 'new session' }).waitFor();
  await runPrompt(page, 'second conversation [[fake:text text=two]]', { results: 2 });

  await page.getByRole('tab', { name: 'Sessions' }).click();
  const rows = page.locator('[data-testid=sessions] li[data-session-id]');
  await rows.nth(1).waitFor();
  assert.equal(await rows.count(), 2);
  assert.match(await rows.nth(0).textContent(), /second conversation.*current/);
  assert.match(await rows.nth(1).textContent(), /first conversation.*1 run/);
  const older = await rows.nth(1).getAttribute('data-session-id');
  await noPageOverflow(page);

  await rows.nth(1).getByRole('button', { name: 'Resume this one' }).click();
  await rows.nth(1).locator('textarea').fill('back to the first [[fake:text text=three]]');
  await rows.nth(1).getByRole('button', { name: 'Resume', exact: true }).click();
  // Back in the conversation, the run resumed the older session.
  await page.locator('#prompt').waitFor({ state: 'visible' });
  await page.locator('article[data-kind=result]').nth(2).waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  await page.locator('.project-bar', { hasText: `session ${older.slice(0, 8)}` }).waitFor();
  assert.deepEqual(errors, []);
});
