"""Export a transformers SiglipModel's two towers to ONNX, for the ONNX Runtime peer of bench/siglip_peers.py.

    /work/refvenv/bin/python bench/siglip_onnx_export.py MODEL_DIR OUT_DIR

  visual.onnx    pixel_values [B,3,S,S] float32 -> image_embeds [B,D]  (SiglipModel.get_image_features)
  textual.onnx   input_ids, attention_mask [B,64] int64 -> text_embeds [B,D]  (SiglipModel.get_text_features;
                 the pipeline pads to 64 with SiglipTokenizer's attention mask)
  ref.pt         the traced inputs and transformers' outputs on them

The towers are traced from transformers' own modules (eager attention: torch 1.13 has no
scaled_dot_product_attention), so the graph computes exactly what the PyTorch peer computes.
"""
import argparse
import json
from pathlib import Path

import torch
from transformers import SiglipModel


class Visual(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        return self.m.get_image_features(pixel_values=pixel_values)


class Textual(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m.get_text_features(input_ids=input_ids, attention_mask=attention_mask)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    model = SiglipModel.from_pretrained(a.model_dir, attn_implementation="eager").eval()
    # The patch embedding's padding="valid" traces to aten::_convolution_mode, which torch 1.13's exporter lacks;
    # (0, 0) is the same convolution.
    model.vision_model.embeddings.patch_embedding.padding = (0, 0)
    S = model.config.vision_config.image_size
    L = model.config.text_config.max_position_embeddings
    torch.manual_seed(0)
    pix = torch.randn(2, 3, S, S)
    ids = torch.randint(3, 500, (2, L))
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    ids[:, 11:] = 1  # </s> ends the text and pads it
    common = dict(export_params=True, do_constant_folding=True, opset_version=a.opset)
    vis, txt = Visual(model).eval(), Textual(model).eval()
    with torch.no_grad():
        torch.onnx.export(vis, (pix,), str(a.out_dir / "visual.onnx"), input_names=["pixel_values"],
                          output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, **common)
        torch.onnx.export(txt, (ids, mask), str(a.out_dir / "textual.onnx"),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"},
                                        "text_embeds": {0: "batch"}}, **common)
        ref = {"image_embeds": vis(pix), "text_embeds": txt(ids, mask)}
    torch.save({"pixel_values": pix, "input_ids": ids, "attention_mask": mask, **ref}, a.out_dir / "ref.pt")
    print(json.dumps({"out": str(a.out_dir), "opset": a.opset, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
