/**
 * The demo page served at GET /demo/ in development: every call goes through
 * `@petspark/client` (cookie auth, the socket, the facades, uploads with progress).
 * Built into one file by `npm run build:demo` (server/http/demo_assets/demo.js).
 */
import {
  Client,
  HttpApi,
  HttpError,
  CommandError,
  LocalStorageSeqStore,
  type Alert,
  type ChatMessage,
  type Location,
  type Match,
  type Pet,
  type User,
} from "../src/index.js";

interface DemoHooks {
  client: Client | null;
  http: HttpApi;
  user: User | null;
  /** Every chat.message event handed to the page: [seq, message id, body]. */
  delivered: [number, string, string][];
  /** Every upload progress callback: [sent, total]. */
  progress: [number, number][];
  lastUpload: string | null;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const http = new HttpApi();
const hooks: DemoHooks = { client: null, http, user: null, delivered: [], progress: [], lastUpload: null };
(window as unknown as { petsparkDemo: DemoHooks }).petsparkDemo = hooks;

let client: Client | null = null;
let me: User | null = null;
let pets: Pet[] = [];
const matches = new Map<string, Match>();
let activeConversation: string | null = null;
let typingTimer: ReturnType<typeof setTimeout> | undefined;
let lastTypingSent = 0;
let pendingPhoto: string | null = null;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function button(label: string, onClick: () => void, cls = ""): HTMLButtonElement {
  const b = el("button", cls ? { class: cls, type: "button" } : { type: "button" }, label);
  b.addEventListener("click", onClick);
  return b;
}

function log(text: string): void {
  const list = $("log");
  list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${text}`));
  while (list.childElementCount > 80) list.lastElementChild?.remove();
}

function toast(text: string): void {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  setTimeout(() => (t.hidden = true), 4000);
}

function explain(error: unknown): string {
  if (error instanceof CommandError || error instanceof HttpError) return `${error.code}: ${error.serverMessage}`;
  return String(error);
}

async function guard(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    log(`error ${explain(error)}`);
    toast(explain(error));
  }
}

function here(): Location {
  return { lat: Number(($("lat") as HTMLInputElement).value), lng: Number(($("lng") as HTMLInputElement).value) };
}

function setStatus(state: string): void {
  const s = $("status");
  s.dataset["state"] = state;
  s.className = `pill pill-${state}`;
  s.textContent = state === "open" ? "live" : state === "connecting" ? "reconnecting…" : "offline";
}

function showSeq(): void {
  $("seq").textContent = client?.lastSeq != null ? `seq ${client.lastSeq}` : "";
}

// ------------------------------------------------------------------ auth

async function authenticate(kind: "register" | "login"): Promise<void> {
  const email = ($("auth-email") as HTMLInputElement).value.trim();
  const password = ($("auth-password") as HTMLInputElement).value;
  const name = ($("auth-name") as HTMLInputElement).value.trim() || email.split("@")[0] || "Pet lover";
  $("auth-error").textContent = "";
  try {
    const auth = kind === "register" ? await http.register(email, password, name) : await http.login(email, password);
    await start(auth.user);
  } catch (error) {
    $("auth-error").textContent = explain(error);
  }
}

async function start(user: User): Promise<void> {
  me = user;
  hooks.user = user;
  $("me").textContent = `${user.display_name} · ${user.email ?? ""}`;
  $("auth-card").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  // Cookie authentication: the browser sends the session cookie with the upgrade.
  client = new Client({
    url: http.wsUrl,
    seqStore: new LocalStorageSeqStore(`petspark.demo.last_seq.${user.id}`),
    clientName: "petspark-demo/0.1",
  });
  hooks.client = client;
  client.on("state", (state) => {
    setStatus(state);
    log(`socket ${state}`);
  });
  client.on("welcome", (w) => log(`welcome last_seq=${w.last_seq} resumed=${w.resumed}`));
  client.on("resync", () => {
    log("resync: refetching");
    void refresh();
  });
  client.on("stopped", (error) => {
    log(`stopped ${error.code} ${error.reason}`);
    if (error.code === 4001 || error.code === 4003) signedOut();
  });
  client.on("*", (event) => {
    log(`${"seq" in event ? `#${event.seq} ` : ""}${event.type}`);
    showSeq();
  });
  client.on("match.created", (e) => {
    addMatch(e.match);
    toast("It's a match!");
    if (!activeConversation) void openConversation(e.match);
  });
  client.on("chat.message", (e) => {
    hooks.delivered.push([e.seq, e.message.id, e.message.body]);
    if (e.message.conversation_id === activeConversation) {
      renderMessage(e.message);
      if (e.message.sender_id !== me?.id) void markRead(e.message);
    }
  });
  client.on("chat.read", (e) => {
    if (e.conversation_id === activeConversation) markMineRead(e.message_id);
  });
  client.on("chat.typing", (e) => {
    if (e.conversation_id !== activeConversation) return;
    $("typing").textContent = "Your match is typing…";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => ($("typing").textContent = ""), 3500);
  });
  client.on("lost.alert", (e) => {
    renderAlert(e.alert, true);
    if (e.alert.status === "open") toast(`Lost pet nearby: ${e.alert.description}`);
  });
  setStatus("connecting");
  await client.connect();
  await refresh();
}

function signedOut(): void {
  client?.close();
  client = null;
  hooks.client = null;
  me = null;
  $("auth-card").hidden = false;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("me").textContent = "not signed in";
  setStatus("closed");
}

async function refresh(): Promise<void> {
  if (!client) return;
  pets = (await client.pets.mine()).pets;
  renderPets();
  for (const m of (await client.matches.list({ limit: 50 })).matches) addMatch(m);
  showSeq();
}

// ------------------------------------------------------------------ pets, discovery, matches

function renderPets(): void {
  const list = $("pets");
  list.replaceChildren(...pets.map((p) => el("li", { "data-id": p.id }, el("span", {}, `${p.name} `, el("span", { class: "muted small" }, p.species)), el("span", { class: "muted small" }, p.photo_ids.length ? `${p.photo_ids.length} photo${p.photo_ids.length > 1 ? "s" : ""}` : ""))));
  const select = $("swipe-as") as HTMLSelectElement;
  select.replaceChildren(...pets.map((p) => el("option", { value: p.id }, `as ${p.name}`)));
}

async function createPet(): Promise<void> {
  if (!client) return;
  const name = ($("pet-name") as HTMLInputElement).value.trim();
  const species = ($("pet-species") as HTMLSelectElement).value as Pet["species"];
  const { pet } = await client.pets.create({ name, species, location: here(), photo_ids: pendingPhoto ? [pendingPhoto] : [] });
  pendingPhoto = null;
  ($("pet-name") as HTMLInputElement).value = "";
  pets.push(pet);
  renderPets();
  log(`created pet ${pet.name}`);
}

async function discover(): Promise<void> {
  if (!client) return;
  const petId = ($("swipe-as") as HTMLSelectElement).value;
  if (!petId) return toast("Add a pet first");
  const { candidates } = await client.discovery.candidates({ pet_id: petId });
  const list = $("candidates");
  list.replaceChildren(...candidates.map((c) => {
    const actions = el("span", { class: "actions" });
    const li = el("li", { "data-id": c.pet.id }, el("span", {}, `${c.pet.name} `, el("span", { class: "muted small" }, `${c.pet.species} · ${(c.distance_m / 1000).toFixed(1)} km`)), actions);
    const swipe = (direction: "like" | "pass") => guard(async () => {
      const { match } = await client!.matching.swipe({ pet_id: petId, target_pet_id: c.pet.id, direction });
      li.remove();
      if (match) addMatch(match);
    });
    actions.append(button("Pass", () => void swipe("pass"), "ghost"), button("Like", () => void swipe("like")));
    return li;
  }));
  if (!candidates.length) list.replaceChildren(el("li", { class: "muted small" }, "Nobody new nearby yet"));
}

function addMatch(match: Match): void {
  matches.set(match.id, match);
  const list = $("matches");
  if (list.querySelector(`[data-id="${match.id}"]`)) return;
  const li = el("li", { "data-id": match.id, "data-conversation": match.conversation_id }, el("span", {}, "Match ", el("span", { class: "muted small" }, new Date(match.created_at).toLocaleString())), button("Chat", () => void guard(() => openConversation(match)), "secondary"));
  list.prepend(li);
}

// ------------------------------------------------------------------ chat

async function openConversation(match: Match): Promise<void> {
  if (!client) return;
  activeConversation = match.conversation_id;
  for (const li of $("matches").querySelectorAll("li")) li.classList.toggle("active", li.getAttribute("data-conversation") === activeConversation);
  $("chat-with").textContent = `· match ${match.id.slice(0, 8)}`;
  ($("chat-input") as HTMLInputElement).disabled = false;
  ($("chat-send") as HTMLButtonElement).disabled = false;
  $("messages").replaceChildren();
  const { messages } = await client.chat.history({ conversation_id: activeConversation, limit: 50 });
  for (const m of [...messages].reverse()) renderMessage(m);
  const newest = messages.find((m) => m.sender_id !== me?.id);
  if (newest) await markRead(newest);
}

function renderMessage(m: ChatMessage): void {
  const list = $("messages");
  const mine = m.sender_id === me?.id;
  const li = el("li", { "data-id": m.id, class: mine ? "mine" : "" }, m.deleted_at ? "(deleted)" : m.body, el("span", { class: "meta" }, new Date(m.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), mine ? el("span", { class: "receipt" }, " ✓") : ""));
  const existing = list.querySelector(`[data-id="${m.id}"]`);
  if (existing) {
    existing.replaceWith(li);
    return;
  }
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function markMineRead(messageId: string): void {
  const items = [...$("messages").querySelectorAll("li")];
  const upTo = items.findIndex((li) => li.getAttribute("data-id") === messageId);
  for (const li of items.slice(0, upTo + 1)) {
    const receipt = li.querySelector(".receipt");
    if (receipt) {
      receipt.textContent = " ✓✓ read";
      li.setAttribute("data-read", "true");
    }
  }
}

async function markRead(m: ChatMessage): Promise<void> {
  if (!client || document.visibilityState === "hidden") return;
  await client.chat.read({ conversation_id: m.conversation_id, message_id: m.id }).catch((e: unknown) => log(`chat.read ${explain(e)}`));
}

async function sendMessage(): Promise<void> {
  const input = $("chat-input") as HTMLInputElement;
  const body = input.value.trim();
  if (!client || !activeConversation || !body) return;
  input.value = "";
  // client_msg_id is filled in by the client: a resend after a reconnect is harmless.
  const { message } = await client.chat.send({ conversation_id: activeConversation, body });
  renderMessage(message);
}

function typing(): void {
  if (!client || !activeConversation || Date.now() - lastTypingSent < 2000) return;
  lastTypingSent = Date.now();
  void client.chat.typing({ conversation_id: activeConversation }).catch(() => undefined);
}

// ------------------------------------------------------------------ lost & found

function renderAlert(alert: Alert, incoming: boolean): void {
  const list = $("alerts");
  const li = el("li", { "data-id": alert.id, "data-status": alert.status, class: incoming && alert.status === "open" ? "alert" : "" }, el("span", {}, el("span", { class: incoming ? "badge badge-alert" : "badge" }, incoming ? "nearby" : "yours"), " ", alert.description), el("span", { class: "muted small" }, `${alert.status} · ${(alert.radius_m / 1000).toFixed(1)} km`));
  const existing = list.querySelector(`[data-id="${alert.id}"]`);
  if (existing) existing.replaceWith(li);
  else list.prepend(li);
}

async function watchArea(): Promise<void> {
  if (!client) return;
  const { watch } = await client.lost.watch({ location: here(), radius_m: 2000 });
  $("watch-status").textContent = `watching ${watch.radius_m / 1000} km around ${watch.location.lat.toFixed(3)}, ${watch.location.lng.toFixed(3)}`;
}

async function reportLost(): Promise<void> {
  if (!client) return;
  const description = ($("lost-description") as HTMLInputElement).value.trim();
  const params = { description, location: here(), radius_m: 1000, ...(pets[0] ? { pet_id: pets[0].id } : {}) };
  const { alert } = await client.lost.report(params);
  ($("lost-description") as HTMLInputElement).value = "";
  renderAlert(alert, false);
}

// ------------------------------------------------------------------ uploads

async function uploadPhoto(file: File): Promise<void> {
  const bar = $("progress-bar");
  bar.style.width = "0";
  $("upload-status").textContent = `uploading ${file.name} (${Math.round(file.size / 1024)} KiB)…`;
  hooks.progress = [];
  const upload = await http.upload(file, {
    purpose: "pet_photo",
    filename: file.name,
    onProgress: (sent, total) => {
      hooks.progress.push([sent, total]);
      bar.style.width = `${Math.round((100 * sent) / Math.max(1, total))}%`;
    },
  });
  hooks.lastUpload = upload.id;
  $("upload-status").textContent = `uploaded · ${upload.status} · ${upload.size} bytes`;
  const preview = $("photo-preview") as HTMLImageElement;
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  if (client && pets[0]) {
    const { pet } = await client.pets.update({ pet_id: pets[0].id, photo_ids: [...pets[0].photo_ids, upload.id].slice(-10) });
    pets[0] = pet;
    renderPets();
  } else {
    pendingPhoto = upload.id;
  }
}

// ------------------------------------------------------------------ wiring

function wire(): void {
  $("register").addEventListener("click", () => void authenticate("register"));
  $("login").addEventListener("click", () => void authenticate("login"));
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void authenticate("login");
  });
  $("logout").addEventListener("click", () => void guard(async () => {
    await http.logout();
    signedOut();
  }));
  $("pet-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void guard(createPet);
  });
  $("discover").addEventListener("click", () => void guard(discover));
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void guard(sendMessage);
  });
  $("chat-input").addEventListener("input", typing);
  $("watch").addEventListener("click", () => void guard(watchArea));
  $("lost-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void guard(reportLost);
  });
  $("photo").addEventListener("change", () => {
    const file = ($("photo") as HTMLInputElement).files?.[0];
    if (file) void guard(() => uploadPhoto(file));
  });
}

wire();
// A session cookie from an earlier visit signs the page in.
http.me().then(({ user }) => start(user)).catch(() => undefined);
