// A ranking is a list of best-first groups of completion ids; a group of two or more is a tie.
// Pure functions: each returns a new ranking and leaves its input alone.

export function locate(groups, id) {
  for (let i = 0; i < groups.length; i++) {
    const j = groups[i].indexOf(id);
    if (j >= 0) return [i, j];
  }
  return null;
}

function copy(groups) {
  return groups.map((group) => [...group]);
}

// Remove `id`; `index` (a position in the old ranking) is returned shifted to the new one.
function without(groups, id, index = 0) {
  const result = copy(groups);
  const at = locate(result, id);
  if (!at) return { result, index };
  result[at[0]].splice(at[1], 1);
  if (result[at[0]].length === 0) {
    result.splice(at[0], 1);
    if (at[0] < index) index -= 1;
  }
  return { result, index };
}

export function unrank(groups, id) {
  return without(groups, id).result;
}

// Put `id` alone in a new group before group `index` (index = length: at the bottom).
export function insertGroup(groups, id, index) {
  const moved = without(groups, id, index);
  moved.result.splice(Math.max(0, Math.min(moved.index, moved.result.length)), 0, [id]);
  return moved.result;
}

// Tie `id` with the members of group `index`.
export function joinGroup(groups, id, index) {
  const at = locate(groups, id);
  if (at && at[0] === index) return copy(groups);
  const moved = without(groups, id, index);
  if (moved.index >= moved.result.length) {
    moved.result.push([id]);
  } else {
    moved.result[moved.index].push(id);
  }
  return moved.result;
}

export function appendIfUnranked(groups, id) {
  return locate(groups, id) ? copy(groups) : [...copy(groups), [id]];
}

// Up: a tied id first leaves its tie (just above it); a lone id swaps with the group above.
export function moveUp(groups, id) {
  const at = locate(groups, id);
  if (!at) return copy(groups);
  const [i] = at;
  if (groups[i].length > 1) return insertGroup(groups, id, i);
  if (i === 0) return copy(groups);
  const result = copy(groups);
  [result[i - 1], result[i]] = [result[i], result[i - 1]];
  return result;
}

export function moveDown(groups, id) {
  const at = locate(groups, id);
  if (!at) return copy(groups);
  const [i] = at;
  if (groups[i].length > 1) return insertGroup(groups, id, i + 1);
  if (i === groups.length - 1) return copy(groups);
  const result = copy(groups);
  [result[i + 1], result[i]] = [result[i], result[i + 1]];
  return result;
}

// Tie with the group above; pressed again on a tied id, untie it (it goes just below).
export function toggleTie(groups, id) {
  const at = locate(groups, id);
  if (!at) return copy(groups);
  const [i] = at;
  if (groups[i].length > 1) return insertGroup(groups, id, i + 1);
  if (i === 0) return copy(groups);
  return joinGroup(groups, id, i - 1);
}

// Keep only ids that are in `allowed`, once each (a restored answer may be stale).
export function sanitize(groups, allowed) {
  const seen = new Set();
  const result = [];
  for (const group of Array.isArray(groups) ? groups : []) {
    const kept = (Array.isArray(group) ? group : []).filter((id) => allowed.has(id) && !seen.has(id));
    kept.forEach((id) => seen.add(id));
    if (kept.length) result.push(kept);
  }
  return result;
}
