// Sorting and filtering for the leaderboard tables. The pages read fine without it:
// rows are already in UAR order and every number is in the HTML.
(function () {
  "use strict";

  function sortValue(row, index) {
    return row.cells[index].getAttribute("data-sort") || "";
  }

  function compare(a, b, numeric) {
    if (a === "" || b === "") {
      return a === b ? 0 : a === "" ? 1 : -1;  // blanks last whichever way
    }
    if (numeric) {
      return parseFloat(a) - parseFloat(b);
    }
    return a.localeCompare(b);
  }

  function sortBy(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "number";
    var current = th.getAttribute("aria-sort");
    var direction = current === "descending" ? "ascending"
      : current === "ascending" ? "descending"
      : numeric ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", direction);
    var sign = direction === "ascending" ? 1 : -1;
    // Each body sorts on its own: reported rows never mix with reproduced ones.
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("group"); });
      rows.forEach(function (r, i) { r.dataset.order = r.dataset.order || String(i); });
      rows.sort(function (x, y) {
        var a = sortValue(x, index), b = sortValue(y, index);
        var c = a === "" || b === "" ? compare(a, b, numeric) : sign * compare(a, b, numeric);
        return c || Number(x.dataset.order) - Number(y.dataset.order);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  }

  function applyFilters(section) {
    var selects = section.querySelectorAll("select[data-filter]");
    var rows = section.querySelectorAll("tbody tr[data-source]");
    var shown = 0;
    Array.prototype.forEach.call(rows, function (row) {
      var keep = Array.prototype.every.call(selects, function (s) {
        return s.value === "" || row.getAttribute("data-" + s.getAttribute("data-filter")) === s.value;
      });
      row.hidden = !keep;
      shown += keep ? 1 : 0;
    });
    Array.prototype.forEach.call(section.querySelectorAll("tbody"), function (body) {
      var group = body.querySelector("tr.group");
      if (group) {
        group.hidden = !body.querySelector("tr[data-source]:not([hidden])");
      }
    });
    var count = section.querySelector(".count");
    if (count) {
      count.textContent = shown + " of " + rows.length + " rows shown";
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.querySelector("button").addEventListener("click", function () { sortBy(table, th); });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("section.dataset"), function (section) {
    var form = section.querySelector("form.filters");
    if (!form) {
      return;
    }
    form.hidden = false;
    form.addEventListener("change", function () { applyFilters(section); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    applyFilters(section);
  });
})();
