// The entry of one rank in the distributed tests: joins the thread group, runs one job of rank-jobs.cjs on the
// built package (dist/, as a user's worker would load it) and posts its result or its error back.
const { parentPort, workerData } = require('node:worker_threads');
const nk = require(`${workerData.root}/dist/cjs/index.js`);
const jobs = require('./rank-jobs.cjs');

async function main() {
  const comm = workerData.join ? nk.joinThreadGroup(workerData.group, workerData.rank) : null;
  return jobs[workerData.job](nk, comm, workerData.data, workerData.rank);
}

main().then(
  (result) => parentPort.postMessage({ ok: true, result }),
  (e) => parentPort.postMessage({ ok: false, error: { name: e && e.name, message: e && e.message } }),
);
