// What the page shows when a generation fails: whatever was thrown, in words. onnxruntime-web's WASM
// code can reject with something that is not an Error (an Emscripten abort, a number from the WASM
// heap), and an Error can carry no message; `e.message` or `String(e)` then shows nothing at all.

/** `e` as one line for the page's #error: an Error's message, else what kind of value was thrown and its value. */
export function describeThrown(e: unknown): string {
  if (e instanceof Error) {
    if (e.message) return e.message;
    return `${e.name || 'Error'} with no message was thrown${e.stack ? ` at ${e.stack.split('\n').slice(1, 3).map((l) => l.trim()).join(' ')}` : ''}; the browser console has the details`;
  }
  if (typeof e === 'string' && e !== '') return e;
  let value: string;
  try {
    value = typeof e === 'string' ? JSON.stringify(e) : typeof e === 'object' && e !== null ? `${Object.prototype.toString.call(e)} ${JSON.stringify(e)}` : String(e);
  } catch {
    value = Object.prototype.toString.call(e);
  }
  const kind = e === null || e === undefined ? `${String(e)} value` : typeof e;
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} was thrown, not an Error: ${value}; the browser console has the details`;
}
