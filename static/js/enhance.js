// Runs before the first paint: tells the stylesheet that scripts run, so the enhanced layout
// (overlay comparison, colour swatches, hidden file input) is drawn at once instead of flashing.
document.documentElement.classList.replace("no-js", "js");
