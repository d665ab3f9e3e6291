// Browser test of the server's web page: Debian's chromium, headless, driven by playwright-core (no browser
// download). Starts `zeroshot serve` on a free port, uploads a fixture image on the page, types labels, reads the
// bars, checks them against the JSON API, and saves a screenshot. Also (issue 18 item 12): multi-label mode shows a
// legend, the threshold and each label's threshold mark as the API answers them; an error clears the old results;
// Enter in the search box searches; a thumbnail opens the full image with its path and score; at 390 px wide (a
// phone) the bars keep most of the row's width and the labels are not cut.
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
  // The page asks for /v1/label_sets only after /v1/models answered: wait for the list too (on a loaded machine the
  // second answer can come well after the model line is shown).
  await page.waitForFunction(() => document.querySelectorAll("#labelset option").length > 5, null, { timeout: 30000 })
    .catch(() => {});
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

  // "Show where": the top label's map from /v1/explain drawn over the image. At the center of the grid's largest and
  // smallest cells the canvas is half the image plus half the colour map's ends (dark red, dark blue).
  await page.click("#explain");
  await page.waitForSelector("#map", { timeout: 30000 });
  const apiMap = (await (await fetch(url + "v1/explain", { method: "POST", body: JSON.stringify(body) })).json()).map;
  check(apiMap.label === api.result[0].label, `map of ${apiMap.label}, top label ${api.result[0].label}`);
  const drawn = await page.evaluate((map) => {
    const canvas = document.getElementById("map"), img = document.querySelector("#drop img");
    const w = img.naturalWidth, h = img.naturalHeight, side = Math.min(w, h), g = map.grid[0];
    const plain = document.createElement("canvas");
    plain.width = w;
    plain.height = h;
    plain.getContext("2d").drawImage(img, 0, 0);
    const at = (which) => {
      let best = [0, 0];
      for (let y = 0; y < g; ++y)
        for (let x = 0; x < g; ++x)
          if (map.values[y][x] === which) best = [x, y];
      const px = Math.floor((w - side) / 2 + (best[0] + 0.5) * side / g), py = Math.floor((h - side) / 2 + (best[1] + 0.5) * side / g);
      return { map: [...canvas.getContext("2d").getImageData(px, py, 1, 1).data], image: [...plain.getContext("2d").getImageData(px, py, 1, 1).data] };
    };
    return { width: canvas.width, height: canvas.height, w, h, hi: at(map.max), lo: at(map.min) };
  }, apiMap);
  console.log(JSON.stringify(drawn));
  check(drawn.width === drawn.w && drawn.height === drawn.h, "map canvas is not the image's size");
  check(await page.isHidden("#drop img"), "the plain image is still shown beside the map");
  const near = (got, want) => Math.abs(got - want) <= 4;
  check(near(drawn.hi.map[0], drawn.hi.image[0] / 2 + 64) && near(drawn.hi.map[2], drawn.hi.image[2] / 2), "max cell is not red: " + JSON.stringify(drawn.hi));
  check(near(drawn.lo.map[2], drawn.lo.image[2] / 2 + 64) && near(drawn.lo.map[0], drawn.lo.image[0] / 2), "min cell is not blue: " + JSON.stringify(drawn.lo));

  // Multi-label: the API's scores, thresholds and flags; a legend with the threshold; a mark at each threshold.
  await page.check("#multi");
  await page.click("#classify");
  await page.waitForSelector("#legend:not([hidden]) .swatch", { timeout: 30000 });
  await page.waitForSelector(".bar-row .thr", { timeout: 30000 });
  const multi = await page.$$eval(".bar-row", (rows) => rows.map((r) => ({
    label: r.querySelector(".label").textContent,
    score: Number(r.dataset.score),
    threshold: Number(r.dataset.threshold),
    flagged: r.classList.contains("flagged"),
    mark: parseFloat(r.querySelector(".thr").style.left),
  })));
  const legend = await page.textContent("#legend");
  console.log("legend: " + legend);
  const apiMulti = await (await fetch(url + "v1/classify", { method: "POST", body: JSON.stringify({ ...body, multi_label: true }) })).json();
  check(multi.length === apiMulti.result.length, `multi-label: ${multi.length} bars for ${apiMulti.result.length} labels`);
  multi.forEach((b, i) => {
    const a = apiMulti.result[i];
    check(b.label === a.label && Math.abs(b.score - a.score) < 1e-6, `multi bar ${i}: ${JSON.stringify(b)} vs ${JSON.stringify(a)}`);
    check(Math.abs(b.threshold - a.threshold) < 1e-6 && b.flagged === a.flagged, `multi bar ${i}: threshold/flag differ from the API`);
    check(Math.abs(b.mark - Math.min(1, a.threshold) * 100) < 0.1, `multi bar ${i}: threshold mark at ${b.mark}%`);
  });
  check(/flagged/.test(legend) && /threshold/.test(legend), "legend without flagged / threshold: " + legend);
  const thresholds = [...new Set(apiMulti.result.map((r) => r.threshold))];
  if (thresholds.length === 1) check(legend.includes(thresholds[0].toFixed(4)), "legend does not show the threshold " + thresholds[0]);
  await page.uncheck("#multi");

  // A bad request shows the server's error message on the page, clears the old results, and the page keeps working.
  await page.fill("#labels", "");
  await page.click("#classify");
  await page.waitForFunction(() => document.getElementById("error").textContent.length > 0, null, { timeout: 10000 });
  console.log("error shown: " + (await page.textContent("#error")));
  check((await page.locator(".bar-row").count()) === 0, "old bars still shown next to the error");
  check(await page.isHidden("#legend"), "old legend still shown next to the error");
  await page.fill("#labels", labels.join(", "));
  await page.click("#classify");
  await page.waitForSelector(".bar-row", { timeout: 30000 });
  check((await page.textContent("#error")) === "", "the error stays after a good request");

  // Search: the box is shown when an index is attached; results come with thumbnails served by the server.
  check(await page.isVisible("#search-section"), "search box hidden although an index is attached");
  await page.fill("#query", "a rocket");
  await page.press("#query", "Enter");  // Enter searches
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#results .hit img")];
    return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30000 });
  const hits = await page.$$eval("#results .hit", (hs) => hs.map((h) => h.querySelector("div").textContent));
  console.log("search hits: " + JSON.stringify(hits));
  const apiSearch = await (await fetch(url + "v1/search", { method: "POST", body: JSON.stringify({ query: "a rocket", top_k: 24 }) })).json();
  check(apiSearch.results.length === 4, "API search: " + JSON.stringify(apiSearch));
  apiSearch.results.forEach((r, i) => check(hits[i].endsWith(r.path.split("/").pop()), `hit ${i}: ${hits[i]} vs ${r.path}`));

  // A thumbnail opens the full image, with its path and score.
  await page.click("#results .hit a");
  await page.waitForFunction(() => {
    const i = document.getElementById("viewer-img");
    return document.getElementById("viewer").open && i.complete && i.naturalWidth > 0;
  }, null, { timeout: 30000 });
  const viewer = await page.evaluate(() => ({
    path: document.getElementById("viewer-path").textContent,
    score: document.getElementById("viewer-score").textContent,
    width: document.getElementById("viewer-img").naturalWidth,
  }));
  console.log("viewer: " + JSON.stringify(viewer));
  check(viewer.path === apiSearch.results[0].path, `viewer path ${viewer.path} vs ${apiSearch.results[0].path}`);
  check(viewer.score === "score " + apiSearch.results[0].score.toFixed(4), "viewer score " + viewer.score);
  check(viewer.width > 256, `viewer shows ${viewer.width} px: the thumbnail, not the full image`);
  await page.click("#viewer-close");
  check(!(await page.evaluate(() => document.getElementById("viewer").open)), "viewer did not close");

  // A search error clears the old results.
  await page.fill("#query", "+");
  await page.press("#query", "Enter");
  await page.waitForFunction(() => document.getElementById("search-error").textContent.length > 0, null, { timeout: 10000 });
  check((await page.locator("#results .hit").count()) === 0, "old search results still shown next to the error");

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("screenshot: " + screenshot);

  // A phone, 390 px wide: long labels sit above their bars; each bar keeps most of the row; no label is cut.
  await page.setViewportSize({ width: 390, height: 844 });
  const long = ["an astronaut in a white space suit on a mission", "a small grey cat sleeping on a sofa", "a rocket",
                "a cup of coffee with milk foam"];
  await page.fill("#labels", long.join(", "));
  await page.click("#classify");
  // The old answer also had four bars: wait for the new labels, not just the count.
  await page.waitForFunction((want) => {
    const shown = [...document.querySelectorAll(".bar-row .label")].map((l) => l.textContent);
    return shown.length === want.length && want.every((w) => shown.includes(w));
  }, long, { timeout: 30000 });
  const narrow = await page.$$eval(".bar-row", (rows) => rows.map((r) => {
    const l = r.querySelector(".label");
    return { row: r.getBoundingClientRect().width, track: r.querySelector(".track").getBoundingClientRect().width,
             cut: l.scrollWidth > l.clientWidth + 1 };
  }));
  console.log("at 390 px: " + JSON.stringify(narrow));
  narrow.forEach((b, i) => {
    check(b.track >= 0.6 * b.row, `at 390 px, bar ${i} is ${b.track} px of a ${b.row} px row`);
    check(!b.cut, `at 390 px, label ${i} is cut`);
  });
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 390), "the page scrolls sideways at 390 px");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "_390px.png"), fullPage: true });
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
