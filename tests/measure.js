// Evaluated in a rendered email by tests/chromium.py; returns its findings as a JSON string.
(function () {
  function rgba(value) {
    var m = value.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    var p = m[1].split(/[ ,/]+/).filter(Boolean).map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function luminance(c) {
    var v = c.slice(0, 3).map(function (x) {
      x /= 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  function background(el) {
    for (var e = el; e; e = e.parentElement) {
      var c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return [255, 255, 255, 1];
  }
  function ownText(el) {
    var s = "";
    el.childNodes.forEach(function (n) { if (n.nodeType === 3) s += n.textContent; });
    return s.trim();
  }
  var vw = window.innerWidth;
  var worst = 99, offenders = [], outside = [];
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest(".preheader")) return;
    var text = ownText(el);
    if (!text) return;
    var style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") return;
    var fg = luminance(rgba(style.color)), bg = luminance(background(el));
    var ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < worst) worst = ratio;
    if (ratio < 4.5) offenders.push([text.slice(0, 40), style.color, ratio.toFixed(2)]);
    var r = el.getBoundingClientRect();
    if (r.width && (r.right > vw + 0.5 || r.left < -0.5)) outside.push([text.slice(0, 40), r.left, r.right]);
  });
  var report = {
    viewport: vw,
    scrollWidth: document.documentElement.scrollWidth,
    dark: window.matchMedia("(prefers-color-scheme: dark)").matches,
    minContrast: worst,
    lowContrast: offenders.slice(0, 20),
    outside: outside.slice(0, 20),
    headings: Array.prototype.map.call(document.querySelectorAll("h1,h2,h3,h4,h5,h6"), function (h) { return h.tagName; }),
    lang: document.documentElement.lang,
    bodyBackground: getComputedStyle(document.body).backgroundColor
  };
  return JSON.stringify(report);
})()
