"""The steering recipe (contrastive activation addition): for each personality trait and dialogue
scenario, a trait-positive and a neutral answer of the scenario's character, written as an A/B
question with the option order balanced, judged, gated and exported in the seed's and the CAA
paper's formats."""
