"""The model card's recipe text names the attack and loss weights the run was trained with."""
from zoo.training.export import _recipe_text


def test_adversarial_recipe_names_the_run_attack_and_weights():
    config = {"adversarial": True, "pgd_steps": 1, "clean_weight": 0.05, "mse_weight": 0.1}
    text = _recipe_text(config)
    assert "PGD-1 (FGSM with random start)" in text and "PGD-7" not in text
    assert "0.05 x CE" in text and "0.1 x MSE" in text
    text = _recipe_text({**config, "pgd_steps": 7, "clean_weight": 1.0})
    assert "PGD-7 from" in text and "FGSM" not in text and "1 x CE" in text
