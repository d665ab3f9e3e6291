// Browser test of the server's web page: Debian's chromium, headless, driven by playwright-core (no browser
// download). Starts `zeroshot serve` on a free port, uploads a fixture image on the page, types labels, reads the
// bars, checks them against the JSON API, and saves a screenshot.
//
//   node web_page_test.mjs <zeroshot binary> <model dir> <image> <screenshot.png> <index.db>
// With the index attached, it also searches from the page and checks that every result's thumbnail loads.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [bin, modelDir, image, screenshot, indexDb] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exitCode = 1; };
const check = (ok, msg) => { if (!ok) throw new Error(msg); };

const server = spawn(bin, ["serve", "--model", modelDir, "--port", "0", "--threads", "1", "--label-cache", "none", "-q",
                           "--index", indexDb],
                     { stdio: ["ignore", "pipe", "inherit"] });
let startTimer;
const url = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/(http:\/\/[^\s]+)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error("zeroshot serve exited with " + code)));
  startTimer = setTimeout(() => reject(new Error("zeroshot serve did not start in 60 s")), 60000);
});
clearTimeout(startTimer);  // else it keeps node alive for a minute

const profile = mkdtempSync(join(tmpdir(), "zs-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 800 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("-d"), null, { timeout: 30000 });
  check((await page.locator("#labelset option").count()) > 5, "built-in label sets not listed");

  const labels = ["an astronaut", "a cat", "a rocket", "a cup of coffee"];
  await page.setInputFiles("#file", image);
  await page.fill("#labels", labels.join(", "));
  await page.click("#classify");
  await page.waitForSelector(".bar-row", { timeout: 30000 });
  const bars = await page.$$eval(".bar-row", (rows) => rows.map((r) => ({
    label: r.querySelector(".label").textContent,
    score: Number(r.dataset.score),
    shown: r.querySelector(".score").textContent,
    width: parseFloat(r.querySelector(".fill").style.width),
  })));
  console.log(JSON.stringify(bars));
  check(bars.length === labels.length, `expected ${labels.length} bars, got ${bars.length}`);

  // The same request through the JSON API: the page shows exactly what the API answers.
  const body = { image: readFileSync(image).toString("base64"), candidate_labels: labels };
  const api = await (await fetch(url + "v1/classify", { method: "POST", body: JSON.stringify(body) })).json();
  check(Array.isArray(api.result) && api.result.length === labels.length, "API answer: " + JSON.stringify(api));
  let sum = 0;
  bars.forEach((b, i) => {
    check(b.label === api.result[i].label, `bar ${i}: ${b.label} vs ${api.result[i].label}`);
    check(Math.abs(b.score - api.result[i].score) < 1e-6, `bar ${i}: score ${b.score} vs ${api.result[i].score}`);
    check(Math.abs(b.width - b.score * 100) < 0.1, `bar ${i}: width ${b.width}% for score ${b.score}`);
    check(b.shown === b.score.toFixed(4), `bar ${i}: shows ${b.shown}`);
    if (i) check(bars[i - 1].score >= b.score, "bars not sorted by score");
    sum += b.score;
  });
  check(Math.abs(sum - 1) < 1e-4, "softmax scores do not sum to 1: " + sum);

  // A bad request shows the server's error message on the page, and the page keeps working.
  await page.fill("#labels", "");
  await page.click("#classify");
  await page.waitForFunction(() => document.getElementById("error").textContent.length > 0, null, { timeout: 10000 });
  console.log("error shown: " + (await page.textContent("#error")));
  await page.fill("#labels", labels.join(", "));
  await page.click("#classify");
  await page.waitForSelector(".bar-row", { timeout: 30000 });

  // Search: the box is shown when an index is attached; results come with thumbnails served by the server.
  check(await page.isVisible("#search-section"), "search box hidden although an index is attached");
  await page.fill("#query", "a rocket");
  await page.click("#search");
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#results .hit img")];
    return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30000 });
  const hits = await page.$$eval("#results .hit", (hs) => hs.map((h) => h.querySelector("div").textContent));
  console.log("search hits: " + JSON.stringify(hits));
  const apiSearch = await (await fetch(url + "v1/search", { method: "POST", body: JSON.stringify({ query: "a rocket", top_k: 24 }) })).json();
  check(apiSearch.results.length === 4, "API search: " + JSON.stringify(apiSearch));
  apiSearch.results.forEach((r, i) => check(hits[i].endsWith(r.path.split("/").pop()), `hit ${i}: ${hits[i]} vs ${r.path}`));

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("screenshot: " + screenshot);
  check(errors.length === 0, "page errors: " + errors.join("; "));
  console.log("PASS");
} catch (e) {
  fail(e.message);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  server.kill("SIGTERM");
  const code = await new Promise((r) => server.on("exit", (c) => r(c)));
  if (code !== 0) fail("zeroshot serve exited with " + code + " after SIGTERM");
}
