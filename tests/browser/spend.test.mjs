// Spend in the console (issue 19): the project bar shows today's and the total cost of the
// project's runs, the server panel the server's spend of the day, and a run stopped by a daily
// budget says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject, runPrompt } from './browser.mjs';

const shared = sharedBrowserAndServer({ extraArgs: ['--stats-interval', '1s', '--budgets-project-daily-usd', '1'] });

test('the project view shows its totals and today, the server panel the day\'s spend', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, shared.projectDir());

  const spend = page.locator('[data-testid=project-spend]');
  assert.equal(await spend.textContent(), 'today $0.0000 · total $0.0000');
  await runPrompt(page, '[[fake:spend cost=0.25 input=100 output=50]]');
  await page.locator('[data-testid=project-spend][data-total="0.25"]').waitFor();
  assert.equal(await spend.textContent(), 'today $0.2500 · total $0.2500');
  assert.match(await spend.getAttribute('title'), /Today \(UTC\): \$0\.2500 · 100 in \/ 50 out · 1 run/);

  await runPrompt(page, '[[fake:spend cost=0.5 input=10 output=5]]', { results: 2 });
  await page.locator('[data-testid=project-spend][data-total="0.75"]').waitFor();
  assert.equal(await spend.textContent(), 'today $0.7500 · total $0.7500');

  // The server panel: server_stats every second carries the day's spend.
  await page.locator('.status-panel summary').click();
  const serverToday = page.locator('.status-panel dd[data-key="Spend today"]', { hasText: '$0.7500' }).first();
  await serverToday.waitFor();
  assert.match(await serverToday.textContent(), /^\$0\.7500 · 110 in \/ 55 out · 2 runs$/);
  await screenshot(page, 'console-spend');

  // Over the budget (1 USD): the run that crosses it ends as such, the next one is refused.
  await runPrompt(page, '[[fake:spend cost=0.5]]', { results: 3 });
  await page.locator('article[data-kind=budget]', { hasText: 'Budget reached' }).waitFor();
  await page.locator('article[data-kind=ended]', { hasText: 'budget exceeded' }).waitFor();
  await page.locator('#prompt').fill('one more');
  await page.locator('#prompt').press('Control+Enter');
  await page.getByText('BUDGET_EXCEEDED', { exact: false }).first().waitFor();
  await screenshot(page, 'console-budget-exceeded');
  assert.deepEqual(errors, []);
});
