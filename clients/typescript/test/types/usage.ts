// Compile-only checks (`tsc -p test/types`): command() and the facades are typed by tag.
import { Client, type ChatMessage, type CommandResults, type Pet } from "../../src/index.js";

declare const client: Client;

export async function usage(): Promise<void> {
  const sent = await client.chat.send({ conversation_id: "c", body: "hi" });
  const message: ChatMessage = sent.message;
  const pets: Pet[] = (await client.pets.mine()).pets;
  const swipe: CommandResults["swipe"] = await client.matching.swipe({ pet_id: "a", target_pet_id: "b", direction: "like" });
  const match = swipe.match; // Match | null
  if (match !== null) void match.conversation_id;
  await client.command("lost.report", { description: "Rex", location: { lat: 1, lng: 2 }, radius_m: 500 });
  client.on("chat.message", (e) => void e.message.body);
  client.on("lost.alert", (e) => void e.alert.radius_m);
  client.on("resync", (r) => void r.last_seq);
  // @ts-expect-error body is required
  await client.chat.send({ conversation_id: "c" });
  // @ts-expect-error not a species
  await client.pets.create({ name: "Rex", species: "dragon" });
  // @ts-expect-error unknown command tag
  await client.command("chat.shout", {});
  // @ts-expect-error direction is a literal union
  await client.matching.swipe({ pet_id: "a", target_pet_id: "b", direction: "maybe" });
  void message;
  void pets;
}
