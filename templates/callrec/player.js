/* callrec's player timeline: moves the playhead, seeks on a click, shows the position, says when playback is in a silenced range.
   Served from callrec itself (no CDN); the timeline is drawn by the page without it. */
(function () {
  "use strict";
  // Whole seconds truncated, as formatting.duration_text writes them on the pages and as the browser's own
  // player shows them: 12.9 s is 0:12 everywhere.
  function clock(seconds) {
    var whole = Math.max(0, Math.floor(seconds || 0));
    var rest = whole % 60;
    return Math.floor(whole / 60) + ":" + (rest < 10 ? "0" : "") + rest;
  }
  function setUp(box) {
    var section = box.closest("section") || document;
    var audio = section.querySelector("audio");
    var svg = box.querySelector("svg");
    var head = box.querySelector(".callrec-playhead");
    var now = box.querySelector(".callrec-timeline-now");
    var marks = Array.prototype.slice.call(box.querySelectorAll(".callrec-redacted"));
    if (!audio || !svg || !head) { return; }
    var time = document.createElement("p");
    time.className = "callrec-timeline-time";
    box.appendChild(time);
    function total() {
      return isFinite(audio.duration) && audio.duration > 0 ? audio.duration : parseFloat(box.dataset.duration) || 0;
    }
    function inside(t) {
      return marks.some(function (m) { return t >= parseFloat(m.dataset.start) && t < parseFloat(m.dataset.end); });
    }
    function draw() {
      var length = total();
      var x = length ? Math.min(1000, 1000 * audio.currentTime / length) : 0;
      head.setAttribute("x1", x.toFixed(1));
      head.setAttribute("x2", x.toFixed(1));
      time.textContent = clock(audio.currentTime) + " of " + clock(length);
      var silenced = inside(audio.currentTime);
      if (now) {
        now.hidden = !silenced;
        now.textContent = silenced ? "This part of the call has been silenced." : "";
      }
    }
    svg.addEventListener("click", function (event) {
      var box2 = svg.getBoundingClientRect();
      var length = total();
      if (length && box2.width) {
        audio.currentTime = Math.max(0, Math.min(length, length * (event.clientX - box2.left) / box2.width));
      }
    });
    ["timeupdate", "seeked", "loadedmetadata", "durationchange"].forEach(function (name) { audio.addEventListener(name, draw); });
    draw();
  }
  document.querySelectorAll(".callrec-timeline").forEach(setUp);
}());
