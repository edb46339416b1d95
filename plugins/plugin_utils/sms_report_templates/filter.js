// The client table's filter: by status and by text. Without script the
// table shows every row. A URL fragment can preset it: #status=failed&q=logon01
(function () {
  var rows = document.querySelectorAll("#clients tbody tr");
  var status = document.getElementById("status-filter");
  var search = document.getElementById("client-search");
  var shown = document.getElementById("client-shown");
  function apply() {
    var want = status.value, text = search.value.trim().toLowerCase(), count = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var keep = (!want || row.getAttribute("data-status") === want) &&
                 (!text || row.getAttribute("data-search").indexOf(text) >= 0);
      row.hidden = !keep;
      if (keep) { count++; }
    }
    shown.textContent = count + " of " + rows.length + " shown";
  }
  function fromHash() {
    var params = new URLSearchParams(window.location.hash.slice(1));
    if (params.has("status")) { status.value = params.get("status"); }
    if (params.has("q")) { search.value = params.get("q"); }
    apply();
  }
  status.addEventListener("change", apply);
  search.addEventListener("input", apply);
  window.addEventListener("hashchange", fromHash);
  document.getElementById("client-filter").hidden = false;
  fromHash();
})();
