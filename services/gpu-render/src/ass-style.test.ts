import { test } from "node:test";
import assert from "node:assert/strict";
import { buildForceStyle, defaultSizes, cssColorToAss, type CaptionStyle } from "./ass-style.ts";

test("#RRGGBB becomes opaque &H00BBGGRR", () => {
  assert.equal(cssColorToAss("#FFFFFF"), "&H00FFFFFF");
  assert.equal(cssColorToAss("#ff0000"), "&H000000FF"); // red is the last byte in ASS
  assert.equal(cssColorToAss("#0000FF"), "&H00FF0000");
  assert.equal(cssColorToAss("#123456"), "&H00563412");
});

test("#RRGGBBAA opacity becomes ASS transparency (inverted)", () => {
  assert.equal(cssColorToAss("#FFFFFFFF"), "&H00FFFFFF"); // fully opaque
  assert.equal(cssColorToAss("#00000000"), "&HFF000000"); // fully transparent
  assert.equal(cssColorToAss("#FF000080"), "&H7F0000FF");
  assert.equal(cssColorToAss("#12345601"), "&HFE563412");
});

test("anything else is not a colour", () => {
  for (const bad of ["", "#FFF", "FFFFFF", "#FFFFFFF", "#GGGGGG", "#FFFFFF,Outline=9", "&H00FFFFFF", " #FFFFFF", "#FFFFFF "]) {
    assert.equal(cssColorToAss(bad), undefined, bad);
  }
});

const style: CaptionStyle = {
  fontName: "DejaVu Sans",
  fontSize: 24,
  primaryColour: "&H00FFFFFF",
  outlineColour: "&H00000000",
  outlineWidth: 2,
  alignment: 2,
  marginVertical: 10,
};

test("force_style lists validated values, with the video size as the script canvas when known", () => {
  assert.equal(
    buildForceStyle(style, { width: 320, height: 240 }),
    "PlayResX=320,PlayResY=240,FontName=DejaVu Sans,PrimaryColour=&H00FFFFFF,OutlineColour=&H00000000," +
      "Fontsize=24,BorderStyle=1,Outline=2,Shadow=0,Alignment=2,MarginV=10",
  );
  const noFont = buildForceStyle({ ...style, fontName: undefined, alignment: 6 });
  assert.ok(!noFont.includes("FontName") && !noFont.includes("PlayRes"), noFont);
  assert.match(noFont, /Alignment=6/);
});

test("force_style refuses values that could smuggle extra keys", () => {
  assert.throws(() => buildForceStyle({ ...style, fontName: "Arial,Fontsize=200" }), /font name/);
  assert.throws(() => buildForceStyle({ ...style, primaryColour: "&H00FFFFFF,Outline=50" }), /PrimaryColour/);
  assert.throws(() => buildForceStyle({ ...style, fontSize: 1.5 }), /Fontsize/);
  assert.throws(() => buildForceStyle({ ...style, marginVertical: -1 }), /MarginV/);
});

test("unset sizes follow the picture height: 5% text, 4% margin", () => {
  const auto = { ...style, fontSize: undefined, outlineWidth: undefined, marginVertical: undefined };
  assert.match(buildForceStyle(auto, { width: 1280, height: 720 }), /Fontsize=36,.*Outline=2,.*MarginV=29/);
  assert.match(buildForceStyle(auto, { width: 3840, height: 2160 }), /Fontsize=108,.*Outline=6,.*MarginV=86/);
  assert.match(buildForceStyle(auto), /Fontsize=14,/);
  assert.deepEqual(defaultSizes(360), { fontSize: 18, outlineWidth: 1, marginVertical: 14 });
});
