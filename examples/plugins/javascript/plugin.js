// push-summary: a gitauto plugin in JavaScript.
//
// For a push, it opens the deployed checkout named in its settings (through gitauto's
// git capability), logs what the push brought, and returns an outcome whose output
// later steps can template: the checkout's HEAD, the branch, the commits and the
// changed paths. With `notify` set to a URL, it also posts that summary there with the
// standard `fetch`, which gitauto serves through the same grants as its `http` interface:
// only granted hosts, and the host's credential for that host added by gitauto (the
// plugin never sees it).

import { Repository } from 'gitauto:plugin/git@0.2.0';
import { log } from 'gitauto:plugin/log@0.2.0';

export async function handle(event, settings) {
  const config = JSON.parse(settings || '{}');
  if (!config.checkout) {
    // An error (not a failure outcome): the settings cannot work.
    throw { tag: 'invalid-settings', val: '`checkout` is required: the path of the repository\'s checkout' };
  }
  if (event.kind !== 'push' || event.branch === undefined) {
    return { status: 'skipped', summary: `not a branch push (${event.kind})`, output: 'null' };
  }

  let repo, head;
  try {
    repo = Repository.open(config.checkout);
    head = repo.head();
  } catch (err) {
    // Capability errors arrive as { tag, val } in err.payload.
    const why = err.payload ? `${err.payload.tag}: ${err.payload.val}` : String(err);
    return { status: 'failure', summary: `cannot open ${config.checkout}: ${why}`, output: 'null' };
  }

  let changed = [];
  if (event.before && event.after) {
    try {
      changed = repo.changedPaths(event.before, event.after).map((change) => change.path);
    } catch {
      // The checkout does not have both commits yet: use what the forge listed.
      for (const commit of event.commits) {
        changed.push(...commit.added, ...commit.modified, ...commit.removed);
      }
    }
  }
  changed = [...new Set(changed)].sort();

  const who = event.sender ?? 'someone';
  log('info', `${who} pushed ${event.commits.length} commit(s) to ${event.repository.fullName} ${event.branch}`);
  for (const path of changed) {
    log('info', `changed: ${path}`);
  }
  const output = { head: head ?? null, branch: event.branch, commits: event.commits.map((c) => c.id), changed };
  const summary = `${event.repository.fullName}@${event.branch}: ${changed.length} path(s) changed; checkout at ${(head ?? '').slice(0, 10)}`;
  if (config.notify) {
    let response;
    try {
      response = await fetch(config.notify, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ summary, ...output }),
      });
    } catch (err) {
      // A refused host or a failed connection: gitauto's log line for the step says which.
      return { status: 'failure', summary: `could not notify ${config.notify}: ${err}`, output: 'null' };
    }
    output.notified = response.status;
    output.answer = await response.text();
  }
  return { status: 'success', summary, output: JSON.stringify(output) };
}
